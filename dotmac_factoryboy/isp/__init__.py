"""The ISP reference domain: models, factories and their traits, built on the core package."""
