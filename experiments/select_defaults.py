"""`python experiments/select_defaults.py --env_name ENV --candidate JSON [--candidate JSON ...] --out FILE`: train
every candidate setting and choose on val tasks only (`pipeline.selection`)."""

from pipeline.selection import main

if __name__ == "__main__":
    main()
