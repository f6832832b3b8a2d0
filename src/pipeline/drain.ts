// The gate every call passes (callTool): it counts the calls in flight and, once serve starts a
// graceful shutdown (SIGTERM/SIGINT), admits no new one and wakes the calls waiting for a human
// so they answer "gateway restarting, call again" (their approval request stays pending in the
// store for the re-issued call), while calls already running get until the drain deadline.

import { DrawbridgeError } from '../errors.js';

/** A call let in: its signal aborts when its client cancels or the gateway shuts down (reason: gateway.shutting_down). */
export interface Admission {
  readonly signal: AbortSignal;
  release(): void;
}

export type DrainOutcome = 'drained' | 'timed out';

export interface CallGate {
  /** Lets a call in (null while draining: the call is refused); `client`: the client's cancellation. */
  enter(client?: AbortSignal): Admission | null;
  readonly draining: boolean;
  readonly inFlight: number;
  /**
   * Stops admitting calls, aborts every admitted call's signal with gateway.shutting_down (waits
   * for approval end; running backend work does not listen to it), and resolves once no call is in
   * flight, or when `deadline` resolves first (serve: the admin.drain_timeout timer).
   */
  drain(deadline: Promise<void>): Promise<DrainOutcome>;
}

export function shuttingDown(message = 'The gateway is restarting and takes no new calls; nothing was run.'): DrawbridgeError {
  return new DrawbridgeError('gateway.shutting_down', message);
}

export function isShutdownReason(reason: unknown): boolean {
  return reason instanceof DrawbridgeError && reason.code === 'gateway.shutting_down';
}

export function createCallGate(): CallGate {
  const admitted = new Set<AbortController>();
  let draining = false;
  let idle: (() => void) | null = null;
  return {
    enter(client) {
      if (draining) return null;
      const controller = new AbortController();
      const onClientAbort = (): void => controller.abort(client?.reason);
      if (client?.aborted) controller.abort(client.reason);
      else client?.addEventListener('abort', onClientAbort, { once: true });
      admitted.add(controller);
      let released = false;
      return {
        signal: controller.signal,
        release() {
          if (released) return;
          released = true;
          client?.removeEventListener('abort', onClientAbort);
          admitted.delete(controller);
          if (admitted.size === 0) idle?.();
        },
      };
    },
    get draining() {
      return draining;
    },
    get inFlight() {
      return admitted.size;
    },
    async drain(deadline) {
      draining = true;
      const reason = shuttingDown('The gateway is restarting; nothing was run.');
      for (const controller of admitted) controller.abort(reason);
      if (admitted.size === 0) return 'drained';
      const done = new Promise<DrainOutcome>((resolve) => (idle = () => resolve('drained')));
      return Promise.race([done, deadline.then((): DrainOutcome => 'timed out')]);
    },
  };
}
