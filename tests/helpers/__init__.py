"""What the tests share: independent float64 references of the losses,
synthetic loss curves, the installed command run as a user would, and configs
composed as `lossbench train` composes them."""
