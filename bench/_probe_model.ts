import { startFakeOpenAI } from '../test/support/fake-openai.ts';
import { createOpenAIReplyModel } from '../models/openai-reply.ts';
const fake = await startFakeOpenAI();
const m = createOpenAIReplyModel({ apiKey: 'x', baseURL: fake.url });
const twin = { id: 't', name: 'T', systemPrompt: 'You are Warren.', model: 'gpt', voiceId: 'alloy' };
const pct = (xs: number[], q: number) => xs.slice().sort((x, y) => x - y)[Math.floor(xs.length * q)]!.toFixed(2);
const sdk: number[] = [], raw: number[] = [];
const history = [] as { seq: number; role: 'user' | 'assistant'; content: string }[];
for (let i = 0; i < 200; i++) {
  history.push({ seq: i, role: 'user', content: `question ${i} about the long term` });
  let t = performance.now();
  await m.reply({ twin, history, confirmedData: {} });
  if (i >= 20) sdk.push(performance.now() - t);
  t = performance.now();
  const r = await fetch(`${fake.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt', messages: history }) });
  await r.json();
  if (i >= 20) raw.push(performance.now() - t);
}
console.log(`sdk p50 ${pct(sdk, 0.5)} p99 ${pct(sdk, 0.99)}; raw fetch p50 ${pct(raw, 0.5)} p99 ${pct(raw, 0.99)}`);
await fake.close();
