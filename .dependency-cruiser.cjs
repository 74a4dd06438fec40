// The layers of src/ (issue 13), lowest first: a module may import its own layer or a lower one, never a higher one,
// and no import circle at all. src/config is read by net/ and roles/ and itself reads engine/, so it sits between
// engine and net; src/bench drives the daemon and the lab, so it sits above them; src/index.ts is the top.
const layers = [
  ['wire'],
  ['keys'],
  ['topology'],
  ['policy'],
  ['engine'],
  ['config'],
  ['net'],
  ['roles'],
  ['daemon', 'lab'],
  ['bench'],
  ['cli'],
];
const folderPattern = (names) => `^src/(${names.join('|')})/`;

const upwardRules = layers.slice(0, -1).map((layer, i) => ({
  name: `no-upward-from-${layer.join('-')}`,
  comment: `src/${layer.join(', src/')} may not import a higher layer (${layers.slice(i + 1).flat().join(', ')}, index)`,
  severity: 'error',
  from: { path: folderPattern(layer) },
  to: { path: [folderPattern(layers.slice(i + 1).flat()), '^src/index\\.ts$'] },
}));

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'an import circle makes the modules in it one unit: break it by moving the shared part down',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...upwardRules,
    {
      name: 'cli-not-below-index',
      comment: 'src/index.ts is the top: nothing under src/ imports it',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/index\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.build.json' },
    // Type-only imports count: a type that crosses a layer upward ties the lower layer to the higher one.
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
