import path from 'node:path';
import { messageOf } from './errors.js';
import { sha256File } from './hash.js';
import type { Part } from './manifest.js';

/** Checks size and SHA-256 of a part's artifacts; returns one line per bad file. */
export async function checkArtifacts(setDir: string, parts: Part[], onBytes?: (n: number) => void): Promise<string[]> {
  const bad: string[] = [];
  for (const part of parts) {
    for (const a of part.artifacts) {
      const file = path.join(setDir, a.path);
      try {
        const { sha256, size } = await sha256File(file, onBytes);
        if (size !== a.size) bad.push(`${a.path}: size ${size}, manifest says ${a.size}`);
        else if (sha256 !== a.sha256) bad.push(`${a.path}: sha256 mismatch`);
      } catch (err) {
        bad.push(`${a.path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : messageOf(err)}`);
      }
    }
  }
  return bad;
}

