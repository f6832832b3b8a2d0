// Text rendering of Kubernetes objects the way kubectl prints them, one module
// per form: render/table.ts (server-side Tables as structured columns/rows),
// render/objects.ts (-o yaml/json/name/jsonpath, the single jsonpath path),
// render/describe.ts (describe), render/age.ts (ages). This index only
// re-exports them. Pure.

export { ageOf } from './render/age.js';
export { describeObject, truncateAnnotation } from './render/describe.js';
export { renderObjects, toYaml, type RenderFormat } from './render/objects.js';
export { renderTable, type TableCell, type TableInput, type TableOptions } from './render/table.js';
