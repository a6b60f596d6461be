"""The ``mixkit`` command (console script) and ``python -m mixkit`` (what ``torchrun -m mixkit``
runs): third-party caches redirected first (:mod:`mixkit.caches`), then the CLI."""


def main() -> None:
    from mixkit.caches import redirect_caches

    redirect_caches()
    from mixkit.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
