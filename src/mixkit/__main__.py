"""``python -m mixkit``: what ``torchrun -m mixkit`` runs."""

from mixkit.cli import main

if __name__ == "__main__":
    main()
