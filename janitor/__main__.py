"""`python -m janitor`: run the janitor worker."""

from janitor.worker import main

if __name__ == "__main__":
    main()
