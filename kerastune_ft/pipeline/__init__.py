"""`kft.run`: a whole job from a run config, as `kerastune-ft train` runs it.

`run(config, out)` loads the data (`[data]` -> `kft.data.load_images` /
`load_texts`), checks it, builds the classifier (`[model]`, `[head]` -> the
builder), trains it (`[training]` -> `kft.fine_tune`), evaluates it
(`[evaluation]` -> `kft.evaluate`) and writes the run directory. Notebooks
call it as the command line does.
"""

from kerastune_ft.pipeline.data import DataChecks, check_run_data, load_run_data
from kerastune_ft.pipeline.job import RunResult, run

__all__ = ["DataChecks", "RunResult", "check_run_data", "load_run_data", "run"]
