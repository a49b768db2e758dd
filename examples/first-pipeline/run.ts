import { connect } from 'kaon/client';
import { wordCount } from './workflows';

async function main() {
  const kaon = await connect();
  const run = await kaon.start(wordCount, { text: 'the cat and the hat and the bat' });
  console.log(await run.result());
  await kaon.close();
}
void main();
