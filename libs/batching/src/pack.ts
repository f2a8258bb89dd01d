/**
 * Splits items, in their order, into groups that each fit a budget: a batch that is larger
 * than one message may carry goes as several messages. `sizes` gives each item's size in
 * one or more measures (bytes out and bytes back, say); a group stays within `budget` in
 * every measure. An item larger than the budget on its own still gets a group of its own:
 * whether it may go at all is the caller's decision.
 */
export function packWithin<T>(items: readonly T[], budget: number, sizes: (item: T) => readonly number[]): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let totals: number[] = [];
  for (const item of items) {
    const size = sizes(item);
    if (group.length > 0 && size.some((s, i) => (totals[i] ?? 0) + s > budget)) {
      groups.push(group);
      group = [];
      totals = [];
    }
    group.push(item);
    totals = size.map((s, i) => (totals[i] ?? 0) + s);
  }
  if (group.length > 0) groups.push(group);
  return groups;
}
