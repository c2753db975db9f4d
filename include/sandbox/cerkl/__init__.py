"""Local server of the Cerkl API v3 contract that this product targets."""
