/// A binary min-heap under a strict ordering `less` (for simulators' event queues: push and pop
/// in O(log n); elements that compare equal come out in no particular order, so give them a
/// tie-breaker, such as a send counter, when the order must be stable).
public struct MinHeap<Element> {
    public private(set) var items: [Element] = []
    let less: (Element, Element) -> Bool

    public init(by less: @escaping (Element, Element) -> Bool) { self.less = less }

    public var isEmpty: Bool { items.isEmpty }
    public var count: Int { items.count }
    public var first: Element? { items.first }

    public mutating func push(_ x: Element) {
        items.append(x)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    public mutating func pop() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < items.count, less(items[l], items[m]) { m = l }
            if r < items.count, less(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}
