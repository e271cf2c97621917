"""The local web app (`tuneforge ui`): launch, follow, cancel and compare runs."""
