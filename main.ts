// `npm start`: gateway, actor host and projections in one Node process (runtime/start.ts).
import { keepCompiledCode } from './runtime/compile-cache.ts';

keepCompiledCode();
await import('./runtime/start.ts');
