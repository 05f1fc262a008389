import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { privateTempDir, replaceFileAtomically, sweepStaleTemporaries, temporaryPathFor } from '../src/io/atomic.js';

/** A pid that ran and exited (a child we waited for): no process has it now, save a rare reuse. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

const dir = mkdtempSync(join(tmpdir(), 'kerasopt-atomic-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('temporaries of killed writers', () => {
  it("a write removes the temporaries beside its target whose process no longer runs, and no one else's", async () => {
    const target = join(dir, 'model.h5');
    writeFileSync(target, 'old');
    const dead = deadPid();
    const stale = `.model.h5.${dead}.0badc0de.tmp`;
    const mine = `.model.h5.${process.pid}.aaaa0000.tmp`; // a write of this process, in progress
    const other = `.other.h5.${dead}.0badc0de.tmp`; // another file's temporary
    const stranger = 'model.h5.bak';
    for (const n of [stale, mine, other, stranger]) writeFileSync(join(dir, n), 'x');
    expect(temporaryPathFor(target)).toMatch(new RegExp(`/\\.model\\.h5\\.${process.pid}\\.[0-9a-f]{8}\\.tmp$`));
    expect(sweepStaleTemporaries(target)).toEqual([stale]);
    writeFileSync(join(dir, stale), 'x');
    await replaceFileAtomically(target, (tmp) => writeFileSync(tmp, 'new'));
    expect(readdirSync(dir).sort()).toEqual([mine, other, 'model.h5', stranger].sort());
  });

  it("privateTempDir names its folder by pid and removes the folders of processes that no longer run", () => {
    const dead = deadPid();
    const left = join(tmpdir(), `kerasopt-${dead}-AbC123`);
    const worker = join(tmpdir(), `kerasopt-worker-${dead}-0f9c2d7e-1111-4222-8333-944445555666`);
    for (const d of [left, worker]) mkdirSync(join(d, 'inner'), { recursive: true });
    const mine = privateTempDir();
    try {
      expect(mine).toMatch(new RegExp(`/kerasopt-${process.pid}-[A-Za-z0-9]{6}$`));
      expect([existsSync(left), existsSync(worker)]).toEqual([false, false]);
    } finally {
      rmSync(mine, { recursive: true, force: true });
    }
  });
});
