// Worker-side implementations of the demo steps.
import { implementStep } from 'kaon/worker';
import { ModelKind, evaluateModel, generateDataset, profileDataset, reportMetrics, splitDataset, trainModel } from './demo';
import * as ml from './ml/tabular';

export const generateDatasetImpl = implementStep(generateDataset, ({ seed, rows, features }) => ml.generate(seed, rows, features));

export const profileDatasetImpl = implementStep(profileDataset, ({ data }) => ml.profile(data));

export const splitDatasetImpl = implementStep(splitDataset, ({ data, testFraction, seed }) => ml.split(data, testFraction, seed));

export const trainModelImpl = implementStep(trainModel, ({ kind, train, epochs }, ctx) => {
  const model =
    kind === 'logistic'
      ? ml.trainLogistic(train, epochs, 0.5, 1e-3, (e, loss) => {
          if (e % 50 === 0) ctx.progress(e / epochs, `epoch ${e}/${epochs} loss ${loss.toFixed(4)}`);
        })
      : kind === 'naive-bayes'
        ? ml.trainNaiveBayes(train)
        : ml.trainKnn(train);
  return { model, trainingRows: train.y.length };
});

export const evaluateModelImpl = implementStep(evaluateModel, ({ model, test }) => ml.evaluate(model, test));

export const reportMetricsImpl = implementStep(reportMetrics, ({ metrics }) => {
  const rows = Object.entries(metrics).sort(([, a], [, b]) => b.auc - a.auc);
  const best = ModelKind.parse(rows[0]?.[0]);
  const table = [
    'model        accuracy  precision  recall  f1      auc',
    ...rows.map(([k, m]) => `${k.padEnd(12)} ${m.accuracy.toFixed(4).padStart(8)}  ${m.precision.toFixed(4).padStart(9)}  ${m.recall.toFixed(4).padStart(6)}  ${m.f1.toFixed(4)}  ${m.auc.toFixed(4)}`),
  ].join('\n');
  return { best, table };
});
