#!/usr/bin/env node
// Committed entry so npm can link the `infermesh` command before the first build.
await import('../dist/main.js');
