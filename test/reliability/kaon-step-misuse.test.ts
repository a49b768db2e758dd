// Misuse of kaon_step, or of the protocol fd by a program that writes it itself, is bad input: the step fails on
// its first attempt (its retry policy allows 3), the message names the call or line and the fix, and nothing the
// attempt saved is recorded as an output of the run. The table lives in test/fixtures/step-misuse/cases.ts; its R
// rows run in the R tier (test/r/kaon-step-misuse-r.test.ts), so npm test never needs Rscript.
import { misuseCases } from '../fixtures/step-misuse/cases';
import { misuseSuite } from '../fixtures/step-misuse/suite';

misuseSuite(misuseCases.filter((c) => c.runner !== 'r'), 'Python helper, raw protocol fd');
