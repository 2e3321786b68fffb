/**
 * better-sqlite3 for the Grafana tests, typed by hand for the few calls they make (the package
 * ships no types and @types/better-sqlite3 is not a dependency), and a grafana.db-shaped schema.
 */
import { createRequire } from 'node:module';

export interface Statement {
  run(...params: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

export interface Db {
  exec(sql: string): void;
  prepare(sql: string): Statement;
  pragma(sql: string, opts?: { simple?: boolean }): unknown;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(): void;
}

const require = createRequire(import.meta.url);
const Database = require('better-sqlite3') as new (file: string, opts?: { readonly?: boolean; fileMustExist?: boolean; timeout?: number }) => Db;

export function openDb(file: string, opts: { readonly?: boolean; fileMustExist?: boolean; timeout?: number } = {}): Db {
  return new Database(file, opts);
}

/** The columns of Grafana's dashboard table that matter here; the batch id travels in data. */
export const DASHBOARD_SCHEMA = `
  CREATE TABLE dashboard (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    version INTEGER NOT NULL,
    slug TEXT NOT NULL,
    title TEXT NOT NULL,
    data TEXT NOT NULL,
    org_id INTEGER NOT NULL,
    created DATETIME NOT NULL,
    updated DATETIME NOT NULL
  );
  CREATE INDEX IDX_dashboard_org_id ON dashboard (org_id);
  CREATE UNIQUE INDEX UQE_dashboard_org_id_slug ON dashboard (org_id, slug);
`;

/** A dashboard's JSON, padded like a real one with a few panels. */
export function dashboardJson(batch: number, row: number): string {
  const panels = Array.from({ length: 4 }, (_, i) => ({ id: i + 1, type: 'graph', title: `panel ${i}`, targets: [{ expr: `rate(http_requests_total{batch="${batch}",row="${row}"}[5m])` }] }));
  return JSON.stringify({ batch, row, title: `batch ${batch} row ${row}`, schemaVersion: 36, panels });
}
