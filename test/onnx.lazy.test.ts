import { createRequire } from 'node:module';
import { expect, it } from 'vitest';
import { getBackend, listBackends } from '../src/index.js';

const loaded = (name: string): boolean => Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes(`/node_modules/${name}/`));

it("importing kerasopt loads neither onnxruntime-node nor protobufjs; selecting 'onnx' loads onnxruntime", () => {
  expect(listBackends()).toContain('onnx');
  expect(loaded('onnxruntime-node')).toBe(false);
  expect(loaded('protobufjs')).toBe(false);
  expect(getBackend('onnx').name).toBe('onnx');
  expect(loaded('onnxruntime-node')).toBe(true);
});
