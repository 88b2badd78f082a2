"""`build`: the EnvGen pipeline — propose environments from the catalog, compile them to declarative
environments with seeds, and (with `verify`) check and revise them (DESIGN §3–4, issue #6).

Modules: `propose` (catalog → `Proposal`s), `shapes` (what an operation does to which resource),
`schemas` (spec schemas → engine-safe schemas), `compile` (`Proposal` → `CompiledEnv` → env dir),
`seeds` (seed states), `naming` (names that fit the format's patterns), `pipeline` (one build).
"""
