"""The warehouse stage: the dbt project (staging → intermediate → marts) and the enrichment step.

`twin.warehouse.dbt.run_dbt` runs the dbt project against the configured warehouse;
`twin.warehouse.enrich.enrich_documents` adds language and near-duplicate status between the
intermediate and marts layers. Import the submodule you need: each keeps its heavy imports
(dbt, datasketch, langdetect) to itself.
"""
