/**
 * `import(specifier)`, for the code bundled into bin/streamfn.cjs's CLI bundle. That bundle is
 * compiled from a V8 code cache (vm.Script), and in Node 20 a function restored from the cache
 * has lost the callback its `import()` needs (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), so the
 * binary hands the bundle an import() of its own under this symbol. Everywhere else this is a
 * plain import(). Bare specifiers resolve the same from either file: both are inside the package.
 */
const kImport = Symbol.for("streamfn.import");

export function importModule<T = unknown>(specifier: string): Promise<T> {
  const hook = (globalThis as { [kImport]?: (s: string) => Promise<unknown> })[kImport];
  return (hook ? hook(specifier) : import(specifier)) as Promise<T>;
}
