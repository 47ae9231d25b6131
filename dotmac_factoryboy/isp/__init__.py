"""The ISP reference domain: models, factories and their traits, built on the core package."""

from . import scenarios  # noqa: F401  (registers the pre-built ISP scenario recipes)
