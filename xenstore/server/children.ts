// A node's child names in creation order, as an immutable value that is cheap
// to extend. Nodes are never mutated (a transaction keeps the versions it
// saw), yet adding the 20,000th child must not copy 19,999 names. So the
// versions of one list share an array: extending the newest version pushes in
// place, and older versions keep their shorter length and never see the new
// name. Extending an older version (a transaction and the live tree both
// adding to one node) copies once, and the copy is then the newest of its own
// line. Removing a child copies (rare, and O(children) like C xenstored's).
export class ChildList implements Iterable<string> {
  static readonly EMPTY = new ChildList([], 0, 0);

  private constructor(
    private readonly names: string[],
    /** Number of children in this version. */
    readonly length: number,
    /** Sum of the names' lengths plus one NUL each: C xenstored's childlen. */
    readonly bytes: number,
  ) {}

  static of(names: Iterable<string>): ChildList {
    let list = ChildList.EMPTY;
    for (const n of names) list = list.with(n);
    return list;
  }

  /** This list plus `name` at the end. Names are node names: ASCII, so length is bytes. */
  with(name: string): ChildList {
    const bytes = this.bytes + name.length + 1;
    if (this.length > 0 && this.names.length === this.length) {
      this.names.push(name);
      return new ChildList(this.names, this.length + 1, bytes);
    }
    const copy = this.names.slice(0, this.length);
    copy.push(name);
    return new ChildList(copy, this.length + 1, bytes);
  }

  /** This list without `name` (unchanged if absent). */
  without(name: string): ChildList {
    const copy: string[] = [];
    for (let i = 0; i < this.length; i++) if (this.names[i] !== name) copy.push(this.names[i]);
    if (copy.length === this.length) return this;
    return new ChildList(copy, copy.length, this.bytes - name.length - 1);
  }

  toArray(): string[] {
    return this.names.slice(0, this.length);
  }

  *[Symbol.iterator](): Iterator<string> {
    for (let i = 0; i < this.length; i++) yield this.names[i];
  }
}
