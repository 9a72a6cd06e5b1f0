// Where a JSON text stops being JSON. JSON.parse says why, but not always where (V8 sometimes
// quotes a piece of the text instead, which for directory.json could be a password hash). This
// scanner walks the RFC 8259 grammar only after JSON.parse has failed, and returns the 1-based
// line and column of the first character that cannot be there.

export interface JsonSyntaxError {
  readonly line: number;
  readonly column: number;
  readonly message: string;
}

/** Deeper nesting than this is reported rather than recursed into. */
const MAX_DEPTH = 200;

export function locateJsonError(text: string): JsonSyntaxError | undefined {
  let i = 0;
  let problem: { at: number; message: string } | undefined;

  const stop = (message: string, at = i): false => {
    problem = { at, message };
    return false;
  };
  const expected = (what: string): false =>
    stop(i >= text.length ? `unexpected end of file, expected ${what}` : `expected ${what}, found ${JSON.stringify(text[i])}`);
  const ws = (): void => {
    while (i < text.length && ' \t\r\n'.includes(text[i] as string)) i++;
  };
  const literal = (word: string): boolean => {
    if (!text.startsWith(word, i)) return expected('a value');
    i += word.length;
    return true;
  };
  const string = (): boolean => {
    if (text[i] !== '"') return expected('a double-quoted string');
    const start = i++;
    for (;;) {
      if (i >= text.length) return stop('unterminated string', start);
      const c = text.charCodeAt(i);
      if (c === 0x22) break;
      if (c < 0x20) return stop('control character in a string (write \\n, \\t, ...)');
      if (c === 0x5c) {
        const e = text[i + 1] ?? '';
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return stop('bad \\u escape');
          i += 6;
        } else if (e !== '' && '"\\/bfnrt'.includes(e)) i += 2;
        else return stop('bad escape in a string');
        continue;
      }
      i++;
    }
    i++;
    return true;
  };
  const number = (): boolean => {
    const m = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (m === null) return expected('a value');
    i += m[0].length;
    return true;
  };
  const list = (close: string, item: () => boolean): boolean => {
    i++;
    ws();
    if (text[i] === close) {
      i++;
      return true;
    }
    for (;;) {
      ws();
      if (!item()) return false;
      ws();
      if (text[i] === close) {
        i++;
        return true;
      }
      if (text[i] !== ',') return expected(`"," or ${JSON.stringify(close)}`);
      i++;
      ws();
      if (text[i] === close) return stop(`trailing comma before ${JSON.stringify(close)}`);
    }
  };
  const value = (depth: number): boolean => {
    ws();
    if (depth > MAX_DEPTH) return stop('nested too deeply');
    switch (text[i]) {
      case '{':
        return list('}', () => {
          if (!string()) return false;
          ws();
          if (text[i] !== ':') return expected('":"');
          i++;
          return value(depth + 1);
        });
      case '[':
        return list(']', () => value(depth + 1));
      case '"':
        return string();
      case 't':
        return literal('true');
      case 'f':
        return literal('false');
      case 'n':
        return literal('null');
      default:
        return number();
    }
  };

  if (value(0)) {
    ws();
    if (i < text.length) stop('text after the end of the JSON value');
  }
  if (problem === undefined) return undefined;
  const before = text.slice(0, problem.at);
  const lineStart = before.lastIndexOf('\n') + 1;
  return { line: before.split('\n').length, column: problem.at - lineStart + 1, message: problem.message };
}
