/**
 * Typed errors. Each carries a machine-readable `code` and names the object at fault
 * (variable, file, key) in its message, so callers can both branch on it and show it.
 */

/** Base class of every error kerasopt throws on purpose. */
export class KerasoptError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Malformed arguments, the analogue of Python's TypeError in TF (e.g. malformed grads_and_vars). */
export class KerasTypeError extends KerasoptError {
  constructor(message: string) {
    super(message, 'TYPE_ERROR');
  }
}

/** Invalid values, the analogue of Python's ValueError in TF. */
export class KerasValueError extends KerasoptError {
  constructor(message: string, code = 'VALUE_ERROR') {
    super(message, code);
  }
}

/** A gradient does not fit its variable (shape, dtype or sparse layout). */
export class GradientMismatchError extends KerasValueError {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(message, 'GRADIENT_MISMATCH');
  }
}

/** A hyperparameter is out of its domain (NaN, negative learning rate, beta outside [0, 1)). */
export class HyperparameterError extends KerasValueError {
  constructor(
    readonly hyperparameter: string,
    message: string,
  ) {
    super(message, 'BAD_HYPERPARAMETER');
  }
}

/** A dtype the backend or the operation cannot honour. */
export class UnsupportedDTypeError extends KerasoptError {
  constructor(message: string) {
    super(message, 'UNSUPPORTED_DTYPE');
  }
}

/** A backend that is not registered, or that cannot run what it was asked to. */
export class BackendError extends KerasoptError {
  constructor(message: string) {
    super(message, 'BACKEND_ERROR');
  }
}

/** A file or fixture that cannot be read as what it claims to be. */
export class FormatError extends KerasoptError {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`, 'FORMAT_ERROR');
  }
}
