import type { DType } from './dtype.js';
import { Tensor } from './tensor.js';

let nextUid = 1;

/**
 * A named, mutable tensor: a model weight or an optimizer weight. Optimizers update `value` in place,
 * so a caller that holds a Variable sees every step.
 */
export class Variable<D extends DType = DType> {
  /** Unique per process; slots are keyed by it, as TF keys them by the variable's identity. */
  readonly uid = nextUid++;
  readonly name: string;
  readonly trainable: boolean;

  constructor(
    public value: Tensor<D>,
    options: { name?: string; trainable?: boolean } = {},
  ) {
    this.name = options.name ?? `Variable_${this.uid}`;
    this.trainable = options.trainable ?? true;
  }

  get dtype(): D {
    return this.value.dtype;
  }

  get shape(): readonly number[] {
    return this.value.shape;
  }

  /** Copies `tensor` into this variable (dtype and shape must match). */
  assign(tensor: Tensor<D>): void {
    this.value.copyFrom(tensor);
  }

  /** A copy of the current value. */
  read(): Tensor<D> {
    return this.value.clone();
  }

  toString(): string {
    return `Variable '${this.name}' ${this.value.toString()}`;
  }
}
