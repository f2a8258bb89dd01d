export * from './onnx.js';
export { freePort, waitForPort } from './ports.js';
export { startNatsServer, natsServerBinary, type NatsServer } from './nats-server.js';
export { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from './otlp-receiver.js';
export { startMesh, waitForOutput, ROOT, type Mesh, type MeshOptions, type MeshServiceName, type ServiceProcess } from './mesh.js';
export { mulberry32 } from './random.js';
export { buf, bufCurl } from './buf.js';
export { thrownBy } from './thrown.js';
