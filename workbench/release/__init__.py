"""The signature repository: validation of every commit, versioned releases and their bundles."""
