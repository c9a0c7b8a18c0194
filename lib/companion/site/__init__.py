"""The published book: the configuration that gives it repository and launch buttons
(`config`), the install cell that lets a downloaded or Colab-launched chapter run (`bootstrap`),
and the real-browser check of every built page (`browser`)."""
