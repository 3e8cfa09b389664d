"""The built-in scenario files (TOML), one per pair, and the suite profiles (profiles.toml)."""

from pathlib import Path

SCENARIO_DIR = Path(__file__).parent
