/**
 * The Parse JavaScript SDK this package uses: the copy parse-server itself loads. A host's own `parse`
 * may be another version (npm then nests parse-server's exact one below it); Cloud Code registered on the
 * host's copy does not exist (`Parse.Cloud` is added to parse-server's), its `Parse.Error`s are not
 * recognised as Parse errors by Parse Server, and it is never initialised. So the package asks its host for
 * no `parse` of its own: parse-server (a peer dependency) brings the one it uses.
 */
import path from 'node:path';
import type SDK from 'parse/node';

const parseServersCopy = require.resolve('parse/node', { paths: [path.dirname(require.resolve('parse-server/package.json'))] });
// eslint-disable-next-line @typescript-eslint/no-require-imports
const Parse = require(parseServersCopy) as typeof SDK;
export default Parse;
