// Misuse of r/kaon_step.R is bad input: the step fails on its first attempt, the message names the call and the fix,
// and nothing the attempt saved is recorded as an output of the run. The R rows of test/fixtures/step-misuse/cases.ts
// (the Python and protocol rows: test/reliability/kaon-step-misuse.test.ts).
import assert from 'node:assert/strict';
import { misuseCases } from '../fixtures/step-misuse/cases';
import { misuseSuite } from '../fixtures/step-misuse/suite';

const rCases = misuseCases.filter((c) => c.runner === 'r');
assert.ok(rCases.length > 0, 'the misuse table has R rows');
misuseSuite(rCases, 'R helper');
