"""ljvae package (to be filled by later issues)."""
