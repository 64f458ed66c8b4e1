"""Print the damonx version."""

import damonx


def set_argparser(parser):
    pass


def main(args):
    print(damonx.__version__)
    return 0
