// One process per embedded data folder. PGlite is a single-process database: two
// processes opening the same folder would corrupt it. A serving process records
// itself in <dataDir>/server.json; other commands either talk to it over HTTP or
// refuse with a clear message.
import { readFileSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';

export interface RunningServer {
  pid: number;
  url: string;
}

const fileOf = (dataDir: string) => path.join(dataDir, 'server.json');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The live server that owns this data folder, if any (a stale record is ignored). */
export function runningServer(dataDir: string | null): RunningServer | null {
  if (!dataDir) return null;
  try {
    const record = JSON.parse(readFileSync(fileOf(dataDir), 'utf8')) as RunningServer;
    return record.pid !== process.pid && alive(record.pid) ? record : null;
  } catch {
    return null;
  }
}

export class DataDirBusy extends Error {}

/** Claims the data folder for this process; returns a release function. */
export function claimDataDir(dataDir: string | null, url: string): () => void {
  if (!dataDir) return () => {};
  const other = runningServer(dataDir);
  if (other) throw new DataDirBusy(`数据目录正被另一个 Custos 进程使用 / ${dataDir} is in use by Custos pid ${other.pid} at ${other.url}`);
  mkdirSync(dataDir, { recursive: true });
  writeFileSync(fileOf(dataDir), JSON.stringify({ pid: process.pid, url }));
  return () => rmSync(fileOf(dataDir), { force: true });
}

/** For commands that open the database directly: refuse while a server owns it. */
export function assertNoServer(dataDir: string | null, what: string): void {
  const other = runningServer(dataDir);
  if (other) {
    throw new DataDirBusy(`嵌入式数据库正被运行中的 Custos 使用 / the embedded database is in use by the running server (pid ${other.pid}, ${other.url}): ${what}`);
  }
}
