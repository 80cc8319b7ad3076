"""Staged migration of the legacy book: plan, run (resumable), status, sign-off, roll back.

A stage selects legacy records (not yet committed) by municipality, recording dates and deed
books (``selection``). Stages run in the order they were planned; a stage starts only when every
earlier one has been reconciled clean and signed off by an operator (``signoff``). ``planning``
gives a stage's figures before it runs; ``runner`` commits and anchors it in batches, resumably;
``rollback`` revokes a bad stage on chain and anchors it again without deleting anything.
"""

from migration_tools.stages.planning import PlanReport, plan_stage
from migration_tools.stages.rollback import RollbackReport, rollback_stage
from migration_tools.stages.runner import RunReport, StageRunner
from migration_tools.stages.selection import DEFAULT_BATCH_SIZE, Selector, StageError, candidates, count_candidates
from migration_tools.stages.signoff import StageStatus, sign_off, stage_status

__all__ = [
    "DEFAULT_BATCH_SIZE", "PlanReport", "RollbackReport", "RunReport", "Selector", "StageError", "StageRunner",
    "StageStatus", "candidates", "count_candidates", "plan_stage", "rollback_stage", "sign_off", "stage_status",
]  # fmt: skip
