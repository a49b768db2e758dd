import { implementStep } from 'kaon/worker';
import { cleanText } from './steps';

export const cleanTextImpl = implementStep(cleanText, ({ text }) => ({
  words: text.toLowerCase().match(/[a-z']+/g) ?? [],
}));
