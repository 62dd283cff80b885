import { cleanUp } from './cleanup.ts';
const tag = process.argv[2]!;
console.log(await cleanUp({ brokers: ['127.0.0.1:9092'], namespace: `benchrec${tag}.`, redisUrl: 'redis://127.0.0.1:6379', databaseUrl: 'postgres://postgres@127.0.0.1:5432/test', schemas: [`bench_rec_${tag}`, `bench_emmett_${tag}`] }));
process.exit(0);
