export { startMesh, waitForOutput, ROOT, type Mesh, type MeshOptions, type ServiceProcess } from '@infermesh/testing';
