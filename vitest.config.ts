import { defineConfig } from 'vitest/config';

// One run over every package: unit tests beside the code, integration tests with real
// gRPC / NATS / onnxruntime, end-to-end tests under test/ against built services.
export default defineConfig({
  test: {
    include: [
      'libs/*/src/**/*.test.ts',
      'services/*/src/**/*.test.ts',
      'cli/src/**/*.test.ts',
      'models/src/**/*.test.ts',
      'test/**/*.test.ts',
      'deploy/**/*.test.ts',
      'bench/src/**/*.test.ts',
    ],
    // onnxruntime and sharp are native addons: separate processes isolate them best.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Two cores: end-to-end files start several processes each.
    maxWorkers: 2,
  },
});
