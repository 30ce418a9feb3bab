// The inventory of the app's routes as registered (hidden ones included): method, URL
// and schema. The fuzz test walks it; nothing at run time depends on it.
import type { FastifyInstance, FastifySchema } from 'fastify';

export interface RouteEntry {
  method: string;
  url: string;
  schema: FastifySchema | undefined;
}

const inventories = new WeakMap<FastifyInstance, RouteEntry[]>();

/** Records every route registered after this call (call before the modules register). */
export function recordRoutes(app: FastifyInstance): void {
  const list: RouteEntry[] = [];
  inventories.set(app, list);
  app.addHook('onRoute', (route) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      if (method !== 'HEAD') list.push({ method, url: route.url, schema: route.schema });
    }
  });
}

export function routesOf(app: FastifyInstance): readonly RouteEntry[] {
  return inventories.get(app) ?? [];
}
