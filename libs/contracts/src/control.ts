/** Codecs of repository control (control.proto), carried on NATS request/reply between a router and one worker. */
import { messageCodec, type MessageCodec } from './index.js';
import type { ControlRequest, ControlRequest__Output, ControlResponse, ControlResponse__Output } from './generated/index.js';

let request: MessageCodec<ControlRequest, ControlRequest__Output> | undefined;
let response: MessageCodec<ControlResponse, ControlResponse__Output> | undefined;

export const controlCodecs = {
  request: (): MessageCodec<ControlRequest, ControlRequest__Output> => (request ??= messageCodec('infermesh.v1.ControlRequest')),
  response: (): MessageCodec<ControlResponse, ControlResponse__Output> => (response ??= messageCodec('infermesh.v1.ControlResponse')),
};

/** A reply's bytes at most: a message naming what failed for each version, bounded for the router's log and answer. */
export const MAX_CONTROL_MESSAGE = 4096;
