import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SmtpDecoder } from './codec.js';
import type { DecoderEvent } from './codec.js';

/** Feeds `parts` and drains events; after a DATA command the test switches to DATA mode like a session. */
function run(parts: (string | Buffer)[], opts: { dataAfter?: string; bdat?: number } = {}): string[] {
  const d = new SmtpDecoder();
  const out: string[] = [];
  let content: Buffer[] = [];
  const drain = (): void => {
    for (let e = d.next(); e !== null; e = d.next()) out.push(describe(e));
  };
  const describe = (e: DecoderEvent): string => {
    switch (e.kind) {
      case 'command':
        if (opts.dataAfter !== undefined && e.line === opts.dataAfter) d.startData();
        if (opts.bdat !== undefined && e.line.startsWith('BDAT')) d.startBdat(opts.bdat);
        return `cmd:${e.line}`;
      case 'command-too-long':
        return 'too-long';
      case 'data':
        content.push(e.chunk);
        return 'data';
      case 'data-end': {
        const body = Buffer.concat(content).toString('latin1');
        content = [];
        const flags = [e.issues.bareLf ? 'LF' : '', e.issues.bareCr ? 'CR' : '', e.issues.longLine ? 'LONG' : ''].filter(Boolean).join(',');
        return `end:${JSON.stringify(body)}${flags ? ' ' + flags : ''}`;
      }
      case 'bdat-end': {
        const body = Buffer.concat(content).toString('latin1');
        content = [];
        return `bdat:${JSON.stringify(body)}`;
      }
    }
  };
  for (const p of parts) {
    d.push(typeof p === 'string' ? Buffer.from(p, 'latin1') : p);
    drain();
  }
  return out.filter((x) => x !== 'data');
}

test('RFC 5321 §2.3.8 commands end at CRLF; a bare LF is tolerated for commands', () => {
  assert.deepEqual(run(['EHLO a\r\nMAIL FROM:<x@y>\nNOOP\r', '\n']), ['cmd:EHLO a', 'cmd:MAIL FROM:<x@y>', 'cmd:NOOP']);
});

test('RFC 5321 §4.5.3.1.4 command lines over 512 octets are dropped as they arrive', () => {
  const long = 'X'.repeat(600);
  assert.deepEqual(run([`NOOP ${long.slice(0, 300)}`, `${long.slice(300)}\r\nQUIT\r\n`]), ['too-long', 'cmd:QUIT']);
  assert.deepEqual(run([`${'A'.repeat(510)}\r\n`]), [`cmd:${'A'.repeat(510)}`]);
  assert.deepEqual(run([`${'A'.repeat(511)}\r\n`]), ['too-long']);
});

test('memory stays bounded while a client streams a line that never ends', () => {
  const d = new SmtpDecoder();
  for (let k = 0; k < 1000; k++) {
    d.push(Buffer.alloc(1024, 65));
    assert.equal(d.next(), null);
  }
  assert.ok(d.buffered < 2048, `buffered ${d.buffered}`);
});

test('RFC 5321 §4.5.2 DATA: dot-unstuffing, end at CRLF.CRLF, pipelined command after it', () => {
  assert.deepEqual(run(['DATA\r\nSubject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n'], { dataAfter: 'DATA' }), [
    'cmd:DATA',
    'end:"Subject: x\\r\\n\\r\\n.leading dot\\r\\n"',
    'cmd:QUIT',
  ]);
  assert.deepEqual(run(['DATA\r\n.\r\n'], { dataAfter: 'DATA' }), ['cmd:DATA', 'end:""']);
});

test('DATA end split across every possible chunk boundary', () => {
  const msg = 'DATA\r\na\r\n..b\r\n.\r\nNOOP\r\n';
  for (let cut = 1; cut < msg.length; cut++) {
    assert.deepEqual(run([msg.slice(0, cut), msg.slice(cut)], { dataAfter: 'DATA' }), ['cmd:DATA', 'end:"a\\r\\n.b\\r\\n"', 'cmd:NOOP'], `cut at ${cut}`);
  }
});

test('SMTP smuggling: no bare-LF/CR variant ends the message; each is flagged (bare LF/CR)', () => {
  const variants: [string, string][] = [
    ['\n.\r\n', 'LF'],
    ['\n.\n', 'LF'],
    ['\r\n.\n', 'LF'],
    ['\r\n.\r\r\n', 'CR'],
    ['\r.\r\n', 'CR'],
    ['\r.\r', 'CR'],
  ];
  for (const [sep, flag] of variants) {
    const smuggled = `DATA\r\nfirst${sep}MAIL FROM:<evil@x>\r\nRCPT TO:<v@y>\r\nDATA\r\nsecond\r\n.\r\nQUIT\r\n`;
    const events = run([smuggled], { dataAfter: 'DATA' });
    // Exactly one message: everything up to the real CRLF.CRLF, then QUIT.
    assert.equal(events.length, 3, `${JSON.stringify(sep)}: ${JSON.stringify(events)}`);
    assert.ok(events[1]?.startsWith('end:') && events[1].includes(flag), `${JSON.stringify(sep)} flagged ${flag}: ${events[1]}`);
    assert.equal(events[2], 'cmd:QUIT');
  }
});

test('RFC 5321 §4.5.3.1.6 text lines over 1000 octets are flagged; shorter ones are not', () => {
  const ok = run([`DATA\r\n${'a'.repeat(998)}\r\n.\r\n`], { dataAfter: 'DATA' });
  assert.ok(!ok[1]?.includes('LONG'));
  const long = run([`DATA\r\n${'a'.repeat(999)}\r\n.\r\n`], { dataAfter: 'DATA' });
  assert.ok(long[1]?.includes('LONG'));
});

test('RFC 3030 BDAT reads exactly the announced octets, raw, then commands resume', () => {
  assert.deepEqual(run(['BDAT 6 LAST\r\n.\r\na\nbQUIT\r\n'], { bdat: 6 }), ['cmd:BDAT 6 LAST', 'bdat:".\\r\\na\\nb"', 'cmd:QUIT']);
  assert.deepEqual(run(['BDAT 0 LAST\r\nQUIT\r\n'], { bdat: 0 }), ['cmd:BDAT 0 LAST', 'bdat:""', 'cmd:QUIT']);
});

test('RFC 3207 §4.2: bytes pipelined after STARTTLS are discarded', () => {
  const d = new SmtpDecoder();
  d.push(Buffer.from('STARTTLS\r\nMAIL FROM:<injected@x>\r\n'));
  assert.deepEqual(d.next(), { kind: 'command', line: 'STARTTLS' });
  assert.equal(d.discardBuffered(), 'MAIL FROM:<injected@x>\r\n'.length);
  assert.equal(d.next(), null);
});

test('property: any chunking of a session gives the same events', () => {
  const body = fc.array(fc.constantFrom('a', '.', '\r', '\n', '\r\n', '..', 'b'), { maxLength: 40 }).map((xs) => xs.join(''));
  fc.assert(
    fc.property(body, fc.array(fc.nat(), { maxLength: 8 }), (content, cuts) => {
      const wire = `EHLO x\r\nDATA\r\n${content}\r\n.\r\nQUIT\r\n`;
      const whole = run([wire], { dataAfter: 'DATA' });
      const points = [...new Set(cuts.map((c) => c % wire.length))].sort((a, b) => a - b);
      const parts: string[] = [];
      let last = 0;
      for (const p of points) {
        parts.push(wire.slice(last, p));
        last = p;
      }
      parts.push(wire.slice(last));
      assert.deepEqual(run(parts, { dataAfter: 'DATA' }), whole);
    }),
    { seed: 5321, numRuns: 2000 },
  );
});
