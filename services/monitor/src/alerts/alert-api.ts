/** infermesh.v1.Monitor ListAlerts and WatchAlerts, over the monitor's alerting. */
import type { Alert, ListAlertsRequest__Output, ListAlertsResponse, WatchAlertsRequest__Output } from '@infermesh/contracts';
import type { ServerStreamHandler, UnaryHandler } from '@infermesh/grpc';
import type { Alerting } from './alerting.js';

// A type alias, not an interface, so it stays assignable to ServiceHandlers' index signature.
export type AlertHandlers = {
  ListAlerts: UnaryHandler<ListAlertsRequest__Output, ListAlertsResponse>;
  WatchAlerts: { serverStream: ServerStreamHandler<WatchAlertsRequest__Output, Alert> };
};

export function alertHandlers(alerting: Alerting): AlertHandlers {
  return {
    async ListAlerts({ includeResolved }) {
      return { alerts: alerting.list(includeResolved) };
    },
    WatchAlerts: {
      // Ends OK when the client leaves or the monitor stops; RESOURCE_EXHAUSTED when the client falls too far behind.
      serverStream: (request, call, ctx) => alerting.watch(call, ctx.signal, request.sendFiring),
    },
  };
}
