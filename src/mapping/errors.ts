// Problems found in a mappings file. Every one carries file, line and column so an administrator can
// go straight to it; the message says what is wrong and, where it can, what to write instead.

export interface SourcePos {
  readonly file: string;
  readonly line: number; // 1-based
  readonly col: number; // 1-based, counting characters (a tab is one column)
}

export type Severity = 'error' | 'warning';

export interface MappingProblem extends SourcePos {
  readonly severity: Severity;
  /** Stable identifier for scripts and tests, e.g. "unterminated-callout". */
  readonly code: string;
  readonly message: string;
}

export function formatProblem(p: MappingProblem): string {
  const tag = p.severity === 'warning' ? 'warning: ' : '';
  return `${p.file}:${p.line}:${p.col}: ${tag}${p.message}`;
}

/** A problem located by character offset inside a piece of text (a pattern or a template). */
export interface LocalProblem {
  readonly offset: number;
  readonly code: string;
  readonly message: string;
  readonly severity?: Severity;
}

export function formatPos(p: SourcePos): string {
  return `${p.file}:${p.line}`;
}
