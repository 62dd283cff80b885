// `npm start`: gateway, actor host and projections in one Node process.
import { runNode } from './runtime/node.ts';
import { ALL_ROLES } from './runtime/wire.ts';

await runNode(ALL_ROLES);
