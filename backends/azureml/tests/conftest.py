"""Shared helpers of the Azure ML backend tests.

Azure ML's SDK builds its pipeline schemas once, when ``azure.ai.ml`` is first imported,
and adds the if_else/parallel_for node types only if ``AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED``
is true at that moment; a per-test monkeypatch would come too late, so it is set here, at
collection, before any test imports the SDK.
"""

import os
import sys
from pathlib import Path

os.environ["AZURE_ML_CLI_PRIVATE_FEATURES_ENABLED"] = "true"
sys.path.insert(0, str(Path(__file__).parent))
