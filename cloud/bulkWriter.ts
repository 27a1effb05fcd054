/**
 * Bulk creates through Parse Server's database controller, for the worker: the same schema,
 * adapters (PostgreSQL or MongoDB) and unique keys as a REST create, without a full REST write per
 * object (auth, trigger lookup, response building), which made Parse Server's CPU the bottleneck of
 * a batch. Only classes without Cloud Code triggers are allowed: per-item logic belongs in the
 * memory processor.
 */
import express from 'express';
import type { Config } from '../config';
import { BULK_CLASSES } from '../schema/batchFile';
import { masterKeyIps, safeEqual } from './router';

// Plain CommonJS module of Parse Server without type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { newObjectId } = require('parse-server/lib/cryptoUtils') as { newObjectId(size?: number): string };

export interface DatabaseController {
  create(className: string, object: Record<string, unknown>): Promise<unknown>;
}

/** The answer for one object, in the shape of Parse Server's /batch answers. */
export type CreateAnswer = { success: { objectId: string } } | { error: { code: number; error: string } };

/** Mounted at BULK_WRITE_PATH, next to the REST route: `POST …/:className { objects }`, master key only. */
export function bulkWriteRoute(database: DatabaseController, config: Config): express.Router {
  const router = express.Router();
  const masterKeyAllowedFrom = masterKeyIps(config.PARSE_MASTER_KEY_IPS);
  router.post('/:className', express.json({ limit: '64mb' }), (req, res, next) => {
    if (!safeEqual(req.get('X-Parse-Master-Key') ?? '', config.PARSE_MASTER_KEY) || !masterKeyAllowedFrom(req.socket.remoteAddress)) {
      res.status(403).json({ error: { code: 'forbidden', message: 'bulk writes need the master key (from PARSE_MASTER_KEY_IPS)' } });
      return;
    }
    const className = String(req.params.className);
    const objects = (req.body as { objects?: Record<string, unknown>[] }).objects;
    if (!(BULK_CLASSES as readonly string[]).includes(className) || !Array.isArray(objects)) {
      res.status(400).json({ error: { code: 'invalid_request', message: `objects must be an array, for one of ${BULK_CLASSES.join(', ')}` } });
      return;
    }
    Promise.all(
      objects.map(async (object): Promise<CreateAnswer> => {
        const objectId = newObjectId();
        const now = new Date().toISOString();
        try {
          await database.create(className, { ...object, objectId, createdAt: now, updatedAt: now });
          return { success: { objectId } };
        } catch (error) {
          // Parse errors (a duplicate key, a bad value) answer for their object; anything else fails the request.
          const { code, message } = error as { code?: unknown; message: string };
          if (typeof code !== 'number') throw error;
          return { error: { code, error: message } };
        }
      }),
    )
      .then((answers) => res.json(answers))
      .catch(next);
  });
  return router;
}
