/**
 * A worker thread's script as an ES module `data:` URL. kerasopt's workers are made from source
 * text (so they run the same from the TypeScript sources and from dist/). Text given with
 * `eval: true` is read as CommonJS or as an ES module depending on the process's `--input-type`,
 * which a worker inherits (a script run as `node --input-type=module -e ...`); a `data:` URL is
 * always an ES module, whatever the flags.
 */
export function moduleWorkerUrl(source: string): URL {
  return new URL(`data:text/javascript,${encodeURIComponent(source)}`);
}
