// Workflow interceptors that refuse plaintext at a worker holding an encryption key (Kaon's bundle always includes
// them; see runtime/bundle.ts). The worker's codec turns each plaintext payload into a marker without its data
// (data/codec.ts); here any input holding one is refused before pipeline code sees it:
// - the run's params: the run fails at once, non-retryably (KAON_PLAINTEXT_REFUSED), its code never runs;
// - a signal: the run fails the same way (the signal is already in history; its handler never runs);
// - an update: rejected by its validator, before it is accepted, so it never enters history;
// - a step's or child's result: the step call fails non-retryably.
// Without a key the codec makes no markers, so these interceptors change nothing.
import type {
  ActivityInput,
  LocalActivityInput,
  Next,
  SignalInput,
  UpdateInput,
  WorkflowExecuteInput,
  WorkflowInboundCallsInterceptor,
  WorkflowInterceptors,
  WorkflowOutboundCallsInterceptor,
} from '@temporalio/workflow';
import { refusePlaintextArgs, refusedEncoding, plaintextRefusal } from '../definition/internal/plaintext';

class PlaintextInbound implements WorkflowInboundCallsInterceptor {
  // async: a throw becomes a rejection, which the SDK turns into a failed run (a sync throw would fail the task).
  async execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    refusePlaintextArgs(input.args, "the run's params");
    return next(input);
  }

  async handleSignal(input: SignalInput, next: Next<WorkflowInboundCallsInterceptor, 'handleSignal'>): Promise<void> {
    refusePlaintextArgs(input.args, `signal "${input.signalName}"`);
    return next(input);
  }

  validateUpdate(input: UpdateInput, next: Next<WorkflowInboundCallsInterceptor, 'validateUpdate'>): void {
    refusePlaintextArgs(input.args, `update "${input.name}"`);
    next(input);
  }

  async handleUpdate(input: UpdateInput, next: Next<WorkflowInboundCallsInterceptor, 'handleUpdate'>): Promise<unknown> {
    refusePlaintextArgs(input.args, `update "${input.name}"`);
    return next(input);
  }
}

function checkedResult(what: string) {
  return (result: unknown): unknown => {
    const encoding = refusedEncoding(result);
    if (encoding !== undefined) throw plaintextRefusal(what, encoding);
    return result;
  };
}

class PlaintextOutbound implements WorkflowOutboundCallsInterceptor {
  scheduleActivity(input: ActivityInput, next: Next<WorkflowOutboundCallsInterceptor, 'scheduleActivity'>): Promise<unknown> {
    return next(input).then(checkedResult(`the result of step ${input.activityType} (${input.options.activityId ?? `#${input.seq}`})`));
  }

  scheduleLocalActivity(input: LocalActivityInput, next: Next<WorkflowOutboundCallsInterceptor, 'scheduleLocalActivity'>): Promise<unknown> {
    return next(input).then(checkedResult(`the result of local step ${input.activityType}`));
  }
}

export const interceptors = (): WorkflowInterceptors => ({ inbound: [new PlaintextInbound()], outbound: [new PlaintextOutbound()] });
