// The mapping engine's public surface. Other modules import from here, not from the parts.
export { compileMappingsText, loadMappings, diskReader, MappingSet } from './compile.js';
export type { CompiledEntry, CompiledTable, CompileOptions, LoadOptions, LoadResult, TextOptions } from './compile.js';
export { evaluate, mapAsync, mapSync, MAX_OUTPUT } from './evaluate.js';
export type { Diagnostic, MapOptions, MappingResult, TraceStep } from './evaluate.js';
export { accessResult, decodeAccess, delayArgument } from './access.js';
export type { AccessResult, ArgFlag, Decision } from './access.js';
export { flagBit, flagDisplay, flagLetters, flagString, hasFlag, parseFlagLetters } from './flags.js';
export { formatProblem } from './errors.js';
export type { MappingProblem, SourcePos } from './errors.js';
export { compilePattern, describePattern } from './pattern.js';
export type { CompiledPattern } from './pattern.js';
export { Matcher } from './match.js';
export type { MatchOutcome } from './match.js';
export { compileTemplate } from './template.js';
export { FAIL, imageBaseName, quoteTemplateText, succeed } from './callouts.js';
export type {
  CalloutAnswer,
  CalloutLibrary,
  CalloutRequest,
  CalloutRoutine,
  CalloutServices,
  DomainDirectory,
  GeneralDatabase,
  SequenceStore,
  UrlResolver,
} from './callouts.js';
