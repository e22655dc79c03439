/**
 * NODE_OPTIONS of every function: stack traces mapped back to the TypeScript through the source map
 * beside the bundle. The benchmark times the import + init with them too, since each cold start pays.
 */
export const FUNCTION_NODE_OPTIONS = '--enable-source-maps';
